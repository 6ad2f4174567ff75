/*
 * A live dev mesh for integration tests: `keymesh dev up` in a fresh
 * directory, torn down at exit (SIGTERM, then SIGKILL) so no daemon
 * outlives the test.
 */
#ifndef KM_TESTS_KMT_MESH_H
#define KM_TESTS_KMT_MESH_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct kmt_mesh {
	char dir[4096];
	char conf[4200];
	char pin[80];	 /* the user PIN (DIR/user.pin) */
	char so_pin[80]; /* the SO PIN (DIR/so.pin) */
	int nodes;
} kmt_mesh;

/** kmt_mesh_up: a fresh N-node, K-threshold dev mesh; 0 on success. */
int kmt_mesh_up(kmt_mesh *m, int nodes, int threshold);
void kmt_mesh_down(kmt_mesh *m);
/** kmt_mesh_stop / start / kill: node 1..N through `keymesh dev`. */
int kmt_mesh_stop(kmt_mesh *m, int node);
int kmt_mesh_start(kmt_mesh *m, int node);
int kmt_mesh_kill(kmt_mesh *m, int node);
/** kmt_mesh_pid: the running node's pid, or -1. */
pid_t kmt_mesh_pid(kmt_mesh *m, int node);
/** kmt_keymesh: the path of the keymesh binary under test. */
const char *kmt_keymesh(void);

#endif
