/* commands.h - the entry point of every command, one per cmd_*.c file.
 * Each receives argv with argv[0] the command word and returns an exit
 * status (cli.h). */
#ifndef ATTNSEC_COMMANDS_H
#define ATTNSEC_COMMANDS_H

#include "cli.h"

/* attnsec defend METHOD: cmd_defend.c, attnsec-defend(1).  The method
 * table (NULL-terminated) and the copyright method. */
extern const struct cli_method cmd_defend_methods[];
int cmd_defend_copyright(int argc, char **argv);

/* attnsec inspect FILE...: cmd_inspect.c, attnsec-inspect(1). */
int cmd_inspect(int argc, char **argv);

#endif /* ATTNSEC_COMMANDS_H */
