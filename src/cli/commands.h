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
int cmd_defend_copyright_corpus(int argc, char **argv); /* cmd_defend_corpus.c */
int cmd_defend_dp_attn(int argc, char **argv);
int cmd_defend_dpsgd(int argc, char **argv); /* cmd_defend_dpsgd.c */

/* attnsec inspect FILE...: cmd_inspect.c, attnsec-inspect(1). */
int cmd_inspect(int argc, char **argv);

/* attnsec attack METHOD: cmd_attack.c, attnsec-attack(1).  The method
 * table of the group, and one function per method. */
extern const struct cli_method cmd_attack_methods[];
int cmd_attack_attn_invert(int argc, char **argv);
/* cmd_attack_dlg.c: gradient leakage (DLG). */
int cmd_attack_dlg(int argc, char **argv);


/* attnsec release: cmd_release.c, attnsec-release(1). */
int cmd_release(int argc, char **argv);

/* attnsec model METHOD: cmd_model.c, attnsec-model(1). */
extern const struct cli_method cmd_model_methods[];
int cmd_model_init(int argc, char **argv);
int cmd_model_info(int argc, char **argv);
int cmd_model_grad(int argc, char **argv);
int cmd_model_eval(int argc, char **argv);

/* attnsec data METHOD: cmd_data.c, attnsec-data(1). */
extern const struct cli_method cmd_data_methods[];
int cmd_data_list(int argc, char **argv);
int cmd_data_export(int argc, char **argv);

/* attnsec account METHOD: cmd_account.c, attnsec-account(1).  The method
 * table (epsilon, delta, sigma, events). */
extern const struct cli_method cmd_account_methods[];

/* attnsec audit: cmd_audit.c, attnsec-audit(1). */
int cmd_audit(int argc, char **argv);

/* attnsec batch plan|run|status|merge: cmd_batch.c, attnsec-batch(1). */
extern const struct cli_method cmd_batch_methods[];

/* The shipped-data directory: $ATTNSEC_DATADIR, else
 * $(pkgdatadir)/datasets (cmd_model.c). */
const char *cli_datadir(void);

#endif /* ATTNSEC_COMMANDS_H */
