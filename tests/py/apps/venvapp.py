from wsgiref.validate import validator

import venvonly_mod


def _app(environ, start_response):
    body = venvonly_mod.MESSAGE.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


app = validator(_app)
