#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kmt.h"
#include "kmt-mesh.h"
#include "util/util.h"

static kmt_mesh *kmt_mesh_live;

const char *
kmt_keymesh(void)
{
	static char path[4096];
	const char *b = getenv("KM_BUILDDIR");

	snprintf(path, sizeof(path), "%s/tools/keymesh", b ? b : KM_BUILDDIR);
	return path;
}

static void
kmt_mesh_atexit(void)
{
	if (kmt_mesh_live != NULL) {
		kmt_mesh_down(kmt_mesh_live);
	}
}

int
kmt_mesh_up(kmt_mesh *m, int nodes, int threshold)
{
	const char *d = kmt_tmpdir();
	uint8_t *pin = NULL;
	size_t len = 0;
	char path[4200];

	memset(m, 0, sizeof(*m));
	if (d == NULL) {
		return -1;
	}
	snprintf(m->dir, sizeof(m->dir), "%s/mesh", d);
	snprintf(m->conf, sizeof(m->conf), "%s/client.conf", m->dir);
	m->nodes = nodes;
	kmt_mesh_live = m;
	atexit(kmt_mesh_atexit);
	/* test builds: dealers record their primes here (daemon/fault.c) */
	snprintf(path, sizeof(path), "%s/dealer-primes", m->dir);
	setenv("KEYMESHD_TEST_DEALER_PRIMES", path, 1);
	if (kmt_run("%s dev up --dir %s --nodes %d --threshold %d >%s/env "
		    "2>%s/up.log",
		kmt_keymesh(), m->dir, nodes, threshold, d, d) != 0) {
		kmt_run("cat %s/up.log >&2", d);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/user.pin", m->dir);
	if (km_read_file(path, &pin, &len, 64) != 0) {
		return -1;
	}
	while (len > 0 && (pin[len - 1] == '\n' || pin[len - 1] == '\r')) {
		pin[--len] = '\0';
	}
	snprintf(m->pin, sizeof(m->pin), "%s", (char *)pin);
	free(pin);
	pin = NULL;
	snprintf(path, sizeof(path), "%s/so.pin", m->dir);
	if (km_read_file(path, &pin, &len, 64) != 0) {
		return -1;
	}
	while (len > 0 && (pin[len - 1] == '\n' || pin[len - 1] == '\r')) {
		pin[--len] = '\0';
	}
	snprintf(m->so_pin, sizeof(m->so_pin), "%s", (char *)pin);
	free(pin);
	setenv("KEYMESH_CONF", m->conf, 1);
	return 0;
}

void
kmt_mesh_down(kmt_mesh *m)
{
	if (m->dir[0] != '\0') {
		(void)kmt_run("%s dev down --dir %s 2>/dev/null", kmt_keymesh(),
		    m->dir);
	}
	if (kmt_mesh_live == m) {
		kmt_mesh_live = NULL;
	}
}

int
kmt_mesh_stop(kmt_mesh *m, int node)
{
	return kmt_run("%s dev stop --dir %s --node %d 2>/dev/null",
	    kmt_keymesh(), m->dir, node);
}

int
kmt_mesh_start(kmt_mesh *m, int node)
{
	return kmt_run("%s dev start --dir %s --node %d 2>/dev/null",
	    kmt_keymesh(), m->dir, node);
}

int
kmt_mesh_kill(kmt_mesh *m, int node)
{
	return kmt_run("%s dev kill --dir %s --node %d 2>/dev/null",
	    kmt_keymesh(), m->dir, node);
}

pid_t
kmt_mesh_pid(kmt_mesh *m, int node)
{
	char path[4200];
	uint8_t *d = NULL;
	size_t len;
	long pid;

	snprintf(path, sizeof(path), "%s/node%d/keymeshd.pid", m->dir, node);
	if (km_read_file(path, &d, &len, 64) != 0) {
		return -1;
	}
	pid = strtol((char *)d, NULL, 10);
	free(d);
	if (pid <= 0 || kill((pid_t)pid, 0) != 0) {
		return -1;
	}
	return (pid_t)pid;
}
