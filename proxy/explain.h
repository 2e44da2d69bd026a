/* `socialgate explain`: what the configuration decides for a host, and why. */
#ifndef SG_EXPLAIN_H
#define SG_EXPLAIN_H

/* argv[0] is "explain". Returns the process exit code. */
int explain_main(int argc, char **argv, const char *default_config);

#endif
