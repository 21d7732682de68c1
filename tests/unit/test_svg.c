/* Unit tests for core/svg: one point group per point with its attributes,
 * the pick marked once, text escaped for XML, and degenerate charts (one
 * point, all zeros) that still place every coordinate inside the canvas. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/svg.h"

static char *render(const gp_svg_chart *c)
{
    static char buf[1 << 16];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    assert_non_null(f);
    assert_int_equal(gp_svg_write(f, c), 0);
    fclose(f);
    return buf;
}

static gp_svg_chart chart(const char *title, const gp_svg_point *pts, int n, int pick)
{
    return (gp_svg_chart){.title = title,
                          .x_label = "x",
                          .y1_label = "y1",
                          .y2_label = "y2",
                          .points = pts,
                          .num_points = n,
                          .pick = pick};
}

static int count(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)); p++) n++;
    return n;
}

static void test_points_and_pick(void **state)
{
    (void)state;
    gp_svg_point pts[5];
    for (int i = 0; i < 5; i++) {
        pts[i] =
            (gp_svg_point){.y1 = 100.0 * (i + 1), .y2 = 10 + i, .workers = i + 1, .threads = 1};
        snprintf(pts[i].label, sizeof pts[i].label, "%dx1", i + 1);
    }
    gp_svg_chart c = chart("t", pts, 5, 2);
    char *s = render(&c);
    assert_int_equal(count(s, "<g class=\"point"), 5);
    assert_int_equal(count(s, "class=\"point pick\""), 1);
    assert_non_null(strstr(s, "class=\"point pick\" data-workers=\"3\" data-threads=\"1\""));
    assert_non_null(strstr(s, ">4x1</text>"));
    assert_int_equal(count(s, "<svg "), 1);
    assert_non_null(strstr(s, "</svg>\n"));
    assert_int_equal(count(s, "<polyline"), 2);
}

static void test_escaping(void **state)
{
    (void)state;
    gp_svg_point p = {.label = "<1&1>", .y1 = 1, .y2 = 1, .workers = 1, .threads = 1};
    gp_svg_chart c = chart("app \"a<b>\" & \x01"
                           "co",
                           &p, 1, -1);
    char *s = render(&c);
    assert_non_null(strstr(s, "app &quot;a&lt;b&gt;&quot; &amp; co"));
    assert_non_null(strstr(s, "&lt;1&amp;1&gt;"));
    assert_null(strstr(s, "pick"));
    assert_null(strchr(s, '\x01'));
}

static void test_zeros_stay_on_canvas(void **state)
{
    (void)state;
    gp_svg_point p[2] = {{.label = "1x1"}, {.label = "2x1"}};
    gp_svg_chart c = chart("", p, 2, 0);
    char *s = render(&c);
    assert_null(strstr(s, "nan"));
    assert_null(strstr(s, "inf"));
    gp_svg_chart none = c;
    none.num_points = 0;
    none.pick = -1;
    s = render(&none);
    assert_int_equal(count(s, "<g class=\"point"), 0);
    assert_non_null(strstr(s, "</svg>"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_points_and_pick),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_zeros_stay_on_canvas),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
