/* appcall: gunicorn's app factory call syntax, "module:create_app('x', debug=True)".
 *
 * The text after the factory's name is parsed by Python's ast module and
 * each argument evaluated with ast.literal_eval, as gunicorn does: only
 * literals (strings, bytes, numbers, tuples, lists, dicts, sets, True,
 * False, None), never a name, a call or an attribute, so the command line
 * cannot run code. Needs the GIL. */
#ifndef GP_PY_APPCALL_H
#define GP_PY_APPCALL_H

#include <Python.h>
#include <stddef.h>

/* Calls fn with the arguments written in call, the text from '(' to the end
 * ("('x', debug=True)"). Returns a new reference. On NULL, why says what is
 * wrong with the text (no error pending), or why is "" and fn's own
 * exception is pending. */
PyObject *gp_appcall(PyObject *fn, const char *call, char *why, size_t whylen);

#endif
