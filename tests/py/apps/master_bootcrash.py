"""Crashes the worker while it boots: not a Python exception, a plain exit."""
import os

os._exit(1)


def app(environ, start_response):  # never reached
    start_response("200 OK", [])
    return [b""]
