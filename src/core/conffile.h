/* conffile: the config file, read into the flags gp_config_parse takes.
 *
 * Which file: -c/--config FILE (python:MODULE and file:PATH as gunicorn
 * spells them), else ./gallop.conf.py, else ./gunicorn.conf.py, in the
 * directory gallop started in. A Python file (*.py, python:MODULE) is run as
 * gunicorn runs it, by a short-lived interpreter (the venv's bin/python, else
 * the Python gallop was built for): its top-level names are settings, with
 * gunicorn's names (bind, workers, preload_app, raw_env, ...) and gallop's
 * own (max_worker_memory, interface, ...); the interpreter prints them, the
 * master maps them onto flags, so it never loads Python itself. Any other
 * file holds one setting a line ("workers = 4"). A setting gallop does not
 * implement gets a warning or an error of its own, never silence; a bad
 * value names the file, the line and the setting (gp_config_load returns -1,
 * exit 2). Server hooks are left to the workers (--config-hooks). */
#ifndef GP_CONFFILE_H
#define GP_CONFFILE_H

#include "core/config.h"

/* The directory gallop started in (config files are found and relative
 * paths resolved there, also after --chdir and across USR2). */
const char *gp_conffile_start_cwd(void);

/* Puts cfg's --env / raw_env "KEY=VALUE" pairs into this process's
 * environment, which the workers inherit. */
void gp_conffile_apply_env(const gp_config *cfg);

#endif
