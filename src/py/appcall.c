/* appcall: the factory call syntax of an app spec; see appcall.h. */
#include "py/appcall.h"

#include <stdio.h>

#include "py/bridge.h"

/* parse(text) -> (args, kwargs), or ValueError saying why. "f" + text must
 * be exactly one call of a plain name: "(1)(2)" or "(1) + x" are refused. */
static const char helper_src[] =
    "import ast\n"
    "def lit(node):\n"
    "    try:\n"
    "        return ast.literal_eval(node)\n"
    "    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):\n"
    "        why = 'argument %s is not a Python literal' % ast.unparse(node)\n"
    "        raise ValueError(why) from None\n"
    "def parse(text):\n"
    "    try:\n"
    "        call = ast.parse('f' + text, mode='eval').body\n"
    "    except (SyntaxError, ValueError):\n"
    "        call = None\n"
    "    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):\n"
    "        raise ValueError('expected one call: NAME(ARGUMENTS)')\n"
    "    args = []\n"
    "    for a in call.args:\n"
    "        if isinstance(a, ast.Starred):\n"
    "            raise ValueError('*%s is not a Python literal' % ast.unparse(a.value))\n"
    "        args.append(lit(a))\n"
    "    kwargs = {}\n"
    "    for k in call.keywords:\n"
    "        if k.arg is None:\n"
    "            raise ValueError('**%s is not a Python literal' % ast.unparse(k.value))\n"
    "        kwargs[k.arg] = lit(k.value)\n"
    "    return tuple(args), kwargs\n";

/* The pending ValueError's message into why, cleared. */
static void take_reason(char *why, size_t whylen)
{
    PyObject *e = gp_bridge_take_error();
    PyObject *s = e ? PyObject_Str(e) : NULL;
    const char *u = s ? PyUnicode_AsUTF8(s) : NULL;
    snprintf(why, whylen, "%s", u && *u ? u : "cannot parse the arguments");
    PyErr_Clear();
    Py_XDECREF(s);
    Py_XDECREF(e);
}

PyObject *gp_appcall(PyObject *fn, const char *call, char *why, size_t whylen)
{
    PyObject *g = PyDict_New(), *r = NULL, *parsed = NULL, *app = NULL;
    why[0] = 0;
    if (!g || PyDict_SetItemString(g, "__builtins__", PyEval_GetBuiltins()) < 0) goto fail;
    if (!(r = PyRun_String(helper_src, Py_file_input, g, g))) goto fail;
    PyObject *parse = PyDict_GetItemString(g, "parse"); /* borrowed */
    if (!parse || !(parsed = PyObject_CallFunction(parse, "s", call))) goto fail;
    if (!PyTuple_Check(parsed) || PyTuple_GET_SIZE(parsed) != 2) goto fail;
    app = PyObject_Call(fn, PyTuple_GET_ITEM(parsed, 0), PyTuple_GET_ITEM(parsed, 1));
    goto done; /* NULL here is the factory's own exception */
fail:
    take_reason(why, whylen);
done:
    Py_XDECREF(parsed);
    Py_XDECREF(r);
    Py_XDECREF(g);
    return app;
}
