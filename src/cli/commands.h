/* commands.h - the entry point of every command, one per cmd_*.c file.
 * Each receives argv with argv[0] the command word and returns an exit
 * status (cli.h). */
#ifndef ATTNSEC_COMMANDS_H
#define ATTNSEC_COMMANDS_H



#endif /* ATTNSEC_COMMANDS_H */
