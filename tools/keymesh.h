/*
 * The keymesh admin CLI: shared declarations for its command files.
 */
#ifndef KM_TOOLS_KEYMESH_H
#define KM_TOOLS_KEYMESH_H

/* A command: "ca init", "cert issue", ... */
typedef struct kmc_command {
	const char *group; /* "ca" */
	const char *verb;  /* "init" */
	const char *usage; /* arguments, for help */
	const char *help;  /* one line */
	int (*fn)(int argc, char **argv);
} kmc_command;

/* Print one line "keymesh: <cmd>: <message>" to stderr; return 1. */
int kmc_fail(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Print a usage error line and return 2. */
int kmc_usage(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Option parsing shared by commands: --name VALUE pairs.  Returns 0, or 2
 * after printing a usage line for an unknown option or a missing value.
 * @names lists the accepted long options (without "--"); @values receives
 * each one's value or NULL, in the same order.
 */
int kmc_opts(const char *cmd, int argc, char **argv, const char *const *names,
    const char **values, int count);

extern const kmc_command kmc_pki_commands[];
extern const kmc_command kmc_key_commands[];
extern const kmc_command kmc_dev_commands[];
extern const kmc_command kmc_graph_commands[];
extern const kmc_command kmc_policy_commands[];
extern const kmc_command kmc_node_commands[];

struct km_mesh;
/*
 * kmc_status_graph: prints the trust graph table after keymesh status
 * (cmd_graph.c); "unavailable" with the reason when no node serves it.
 */
int kmc_status_graph(struct km_mesh *m, int timeout_ms);

/*
 * kmc_evict_report: prints "evicted: NODE" lines and the keys that still
 * hold an evicted node's index, "BELOW-THRESHOLD" when they cannot be
 * re-shared (cmd_node.c).
 */
int kmc_evict_report(struct km_mesh *m, int timeout_ms);

#endif /* KM_TOOLS_KEYMESH_H */
