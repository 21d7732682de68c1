"""Raises while being imported: the app cannot load."""
raise RuntimeError("master_importraise refuses to load")


def app(environ, start_response):  # never reached
    start_response("200 OK", [])
    return [b""]
