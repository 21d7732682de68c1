/* top: `gallop top [URL]`, the terminal view of a running gallop's workers,
 * read from its --metrics-bind. A client of the master; no Python. */
#ifndef GP_TOP_H
#define GP_TOP_H

/* argv[0] is "top". Returns the exit code: 0 after 'q', 2 for a bad URL. */
int gp_top_main(int argc, char **argv);

#endif
