/* SPDX-License-Identifier: BSD-3-Clause */
/* The nbdcrypt subcommands. Each takes argv starting at the subcommand name and returns the
 * process exit status; on failure it prints one line "nbdcrypt CMD: reason" to stderr. */
#ifndef NBDCRYPT_COMMANDS_H
#define NBDCRYPT_COMMANDS_H

int cmd_format (int argc, char **argv);
int cmd_dump (int argc, char **argv);
int cmd_rewrap (int argc, char **argv);
int cmd_add_kek (int argc, char **argv);
int cmd_remove_kek (int argc, char **argv);
int cmd_reencrypt (int argc, char **argv);
int cmd_verify (int argc, char **argv);
int cmd_kms (int argc, char **argv);
int cmd_ttlv (int argc, char **argv);
int cmd_header (int argc, char **argv);

#endif /* NBDCRYPT_COMMANDS_H */
