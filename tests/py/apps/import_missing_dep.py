import gallop_no_such_dependency_xyz  # noqa: F401


def app(environ, start_response):
    start_response("200 OK", [])
    return []
