/* svg: a small two-axis line chart written as SVG text, for `gallop tune
 * --plot`. It owns the layout (axes, ticks, labels, one marker group per
 * point, the picked point ringed) and XML escaping; it never reads files or
 * measures anything: the caller gives the points and the stream. */
#ifndef GP_SVG_H
#define GP_SVG_H

#include <stdio.h>

typedef struct {
    char label[32]; /* under the x tick, e.g. "2x4" */
    double y1, y2;  /* left-axis and right-axis values */
    int workers, threads;
} gp_svg_point;

typedef struct {
    const char *title, *subtitle; /* subtitle: a smaller second line, may be NULL */
    const char *x_label, *y1_label, *y2_label;
    const gp_svg_point *points; /* in x order */
    int num_points;
    int pick; /* index of the point to mark, -1 for none */
} gp_svg_chart;

/* Writes the chart to f. Every point is one <g class="point"> element with
 * data-workers / data-threads / data-y1 / data-y2 attributes. Returns 0, or
 * -EIO when a write failed. */
int gp_svg_write(FILE *f, const gp_svg_chart *c);

#endif
