#include "report.h"

#include <stdio.h>

/* Placeholder while the report module is being written. */
int
report_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "socialgate report: not available in this build\n");
    return 2;
}
