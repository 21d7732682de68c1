/* tune: `gallop tune MODULE:APP ...`, which measures an app under gallop at
 * several worker and thread counts and recommends one. It starts gallop
 * itself (its own binary, as a user would), drives it with core/loadgen over
 * loopback and reads the workers' CPU time and memory from /proc. A client
 * and a parent only: no Python, nothing of the server's memory. */
#ifndef GP_TUNE_H
#define GP_TUNE_H

/* argv[0] is "tune". Returns the exit code: 0 with a recommendation, 1 when
 * the measurement failed, 2 for bad input (flags, an app that does not load,
 * a path that answers 5xx), 130 when interrupted. */
int gp_tune_main(int argc, char **argv);

#endif
