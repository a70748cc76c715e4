/* attnsec.c - main(): global options, then dispatch to a command group and
 * method (git style: 'attnsec account epsilon ...'). */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_errno.h>

#include "attnsec/attnsec.h"
#include "cli.h"
#include "commands.h"

/* The commands, main job first, in the order 'attnsec --help' lists them. */
static const struct cli_group groups[] = {
    {"audit", cmd_audit, NULL,
     "attack versus defense on shipped data: one report with numbers and plots"},
    {"attack", NULL, cmd_attack_methods,
     "reconstruct private inputs from what a model released"},
    {"defend", NULL, cmd_defend_methods, "run a defense and report what it costs"},
    {"account", NULL, cmd_account_methods, "compute epsilon, delta or the noise for a target"},
    {"release", cmd_release, NULL,
     "release an array with exact differentially private noise"},
    {"model", NULL, cmd_model_methods, "make, describe, differentiate and evaluate models"},
    {"data", NULL, cmd_data_methods, "the shipped datasets"},
    {"batch", NULL, cmd_batch_methods, "plan, run, check and merge a campaign of tasks"},
    {"inspect", cmd_inspect, NULL,
     "print the header, shape and dtype of .npy/.safetensors files"},
    {NULL, NULL, NULL, NULL}};

static void
print_help(void)
{
    printf("Usage: attnsec [OPTION]... COMMAND [ARG]...\n"
           "Measure privacy leakage from transformer attention, and the defenses "
           "against it.\n\nCommands:\n");
    for (const struct cli_group *g = groups; g->name != NULL; g++) {
        if (g->methods == NULL) {
            printf("  %-22s %s\n", g->name, g->summary);
            continue;
        }
        for (const struct cli_method *m = g->methods; m->name != NULL; m++) {
            char both[64];

            snprintf(both, sizeof both, "%s %s", g->name, m->name);
            printf("  %-22s %s\n", both, m->summary);
        }
    }
    printf("\nOptions:\n"
           "  -h, --help             display this help and exit\n"
           "  -V, --version          output version information and exit\n\n"
           "Run 'attnsec COMMAND --help' for the options of one command.\n"
           "Exit status: 0 on success, 64 on a usage error; see attnsec(1) for the "
           "rest.\n\n"
           "Report bugs to: <%s>\nattnsec home page: <%s>\n",
           PACKAGE_BUGREPORT, PACKAGE_URL);
}

static void
print_group_help(const struct cli_group *g)
{
    printf("Usage: attnsec %s METHOD [OPTION]...\n%s.\n\nMethods:\n", g->name, g->summary);
    for (const struct cli_method *m = g->methods; m->name != NULL; m++)
        printf("  %-14s %s\n", m->name, m->summary);
    printf("\nRun 'attnsec %s METHOD --help' for the options of one method.\n"
           "Full documentation: attnsec-%s(1).\n",
           g->name, g->name);
}

static int
run_group(const struct cli_group *g, int argc, char **argv)
{
    cli_set_command(g->name, NULL);
    if (g->methods == NULL) {
        optind = 0; /* 0 also resets getopt's internal state (glibc) */
        return g->fn(argc, argv);
    }
    if (argc < 2)
        return cli_usage_error("missing method (one of the list in 'attnsec %s --help')",
                               g->name);
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        print_group_help(g);
        return EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)
        return cli_print_version();
    for (const struct cli_method *m = g->methods; m->name != NULL; m++) {
        if (strcmp(argv[1], m->name) == 0) {
            cli_set_command(g->name, m->name);
            optind = 0;
            return m->fn(argc - 1, argv + 1);
        }
    }
    return cli_usage_error("unknown method '%s'", argv[1]);
}

/* On a fatal signal, remove every temporary output file, then die of the
 * same signal so the exit status is 128 + n (130 for SIGINT). */
static void
on_fatal_signal(int sig)
{
    asec_afile_abort_all();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void
install_signal_handlers(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &sa, NULL);
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {{"help", no_argument, NULL, 'h'},
                                             {"version", no_argument, NULL, 'V'},
                                             {NULL, 0, NULL, 0}};
    int c, rc;

    /* Production programs turn GSL's aborting handler off and check every
     * status (GSL manual, "Error handling"). */
    gsl_set_error_handler_off();
    install_signal_handlers();
    cli_set_command(NULL, NULL);
    rc = asec_init();
    if (rc != ASEC_OK)
        return cli_fail(rc);

    opterr = 0;
    while ((c = getopt_long(argc, argv, "+hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            print_help();
            return EXIT_OK;
        case 'V':
            return cli_print_version();
        default:
            return cli_option_error(argv, longopts, NULL);
        }
    }
    if (optind >= argc)
        return cli_usage_error("missing command (see 'attnsec --help')");
    for (const struct cli_group *g = groups; g->name != NULL; g++)
        if (strcmp(argv[optind], g->name) == 0)
            return run_group(g, argc - optind, argv + optind);
    return cli_usage_error("unknown command '%s'", argv[optind]);
}
