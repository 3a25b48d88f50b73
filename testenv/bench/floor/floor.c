/*
 * floor - the cheapest milter there is, the benchmarks' floor (issue 18).
 *
 * A do-nothing milter on Sendmail's libmilter (Debian's libmilter-dev) that
 * negotiates byte for byte what loopbreaker negotiates (milter/milter.go:
 * Actions, Protocol and the macro requests per stage), then answers every
 * event it gets the cheapest way: no reply where loopbreaker sends none
 * (MAIL, headers), Continue to RCPT, Skip to the first body chunk, Accept
 * at end of message. It looks at nothing, allocates nothing, logs nothing.
 * testenv/bench's TestFloorNegotiatesLikeLoopbreaker keeps the two from
 * drifting apart.
 *
 * Usage: floor [-q] -p inet:PORT@127.0.0.1|unix:/path
 *   -q  on TCP, set TCP_QUICKACK after every read of the MTA's packets, as
 *       loopbreaker does (milter/guard.go). libmilter has no hook for its
 *       accepted sockets, so this program interposes read(2), which
 *       libmilter calls for every packet; without -q it is stock libmilter,
 *       delayed ACKs and all.
 *
 * Built by the benchmark: cc -O2 -o floor floor.c -lmilter -lpthread
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <libmilter/mfapi.h>

/* Must match milter/milter.go. */
#define LB_ACTIONS (SMFIF_ADDHDRS | SMFIF_ADDRCPT | SMFIF_DELRCPT | SMFIF_QUARANTINE)
#define LB_PROTOCOL (SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NODATA | SMFIP_NOUNKNOWN | \
		     SMFIP_NOEOH | SMFIP_NR_HDR | SMFIP_NR_MAIL | SMFIP_SKIP)
#define LB_NONE "{loopbreaker_none}"

static int quickack;

/*
 * read(2) for the whole process: libmilter reads every MTA packet with it.
 * After a read from a TCP socket, -q acknowledges at once (TCP_QUICKACK is
 * not sticky, so it is set after every read, as loopbreaker does).
 */
ssize_t read(int fd, void *buf, size_t n)
{
	ssize_t r = syscall(SYS_read, fd, buf, n);
	if (quickack && r > 0) {
		int one = 1;
		(void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
	}
	return r;
}

static sfsistat fl_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1,
			     unsigned long f2, unsigned long f3, unsigned long *pf0,
			     unsigned long *pf1, unsigned long *pf2, unsigned long *pf3)
{
	(void)f2;
	(void)f3;
	/* What loopbreaker's negotiation callback answers: its actions that
	 * the MTA offers, plus SETSYMLIST for the macro requests; its
	 * protocol flags that the MTA offers. */
	*pf0 = (LB_ACTIONS & f0) | (f0 & SMFIF_SETSYMLIST);
	*pf1 = LB_PROTOCOL & f1;
	*pf2 = 0;
	*pf3 = 0;
	if (smfi_setsymlist(ctx, SMFIM_CONNECT, LB_NONE) != MI_SUCCESS ||
	    smfi_setsymlist(ctx, SMFIM_HELO, LB_NONE) != MI_SUCCESS ||
	    smfi_setsymlist(ctx, SMFIM_ENVFROM, "{auth_authen} {client_addr} {client_port}") != MI_SUCCESS ||
	    smfi_setsymlist(ctx, SMFIM_ENVRCPT, LB_NONE) != MI_SUCCESS ||
	    smfi_setsymlist(ctx, SMFIM_DATA, LB_NONE) != MI_SUCCESS ||
	    smfi_setsymlist(ctx, SMFIM_EOM, "i") != MI_SUCCESS ||
	    smfi_setsymlist(ctx, SMFIM_EOH, LB_NONE) != MI_SUCCESS)
		return SMFIS_REJECT;
	return SMFIS_CONTINUE;
}

static sfsistat fl_envfrom(SMFICTX *ctx, char **argv)
{
	(void)ctx;
	(void)argv;
	return SMFIS_NOREPLY;
}

static sfsistat fl_envrcpt(SMFICTX *ctx, char **argv)
{
	(void)ctx;
	(void)argv;
	return SMFIS_CONTINUE;
}

static sfsistat fl_header(SMFICTX *ctx, char *name, char *value)
{
	(void)ctx;
	(void)name;
	(void)value;
	return SMFIS_NOREPLY;
}

static sfsistat fl_body(SMFICTX *ctx, unsigned char *b, size_t n)
{
	(void)ctx;
	(void)b;
	(void)n;
	return SMFIS_SKIP;
}

static sfsistat fl_eom(SMFICTX *ctx)
{
	(void)ctx;
	return SMFIS_ACCEPT;
}

static struct smfiDesc desc = {
	.xxfi_name = "floor",
	.xxfi_version = SMFI_VERSION,
	.xxfi_flags = LB_ACTIONS | SMFIF_SETSYMLIST,
	.xxfi_envfrom = fl_envfrom,
	.xxfi_envrcpt = fl_envrcpt,
	.xxfi_header = fl_header,
	.xxfi_body = fl_body,
	.xxfi_eom = fl_eom,
	.xxfi_negotiate = fl_negotiate,
};

int main(int argc, char **argv)
{
	const char *spec = NULL;
	int c;
	while ((c = getopt(argc, argv, "qp:")) != -1) {
		switch (c) {
		case 'q':
			quickack = 1;
			break;
		case 'p':
			spec = optarg;
			break;
		default:
			fprintf(stderr, "usage: floor [-q] -p inet:PORT@HOST|unix:/path\n");
			return 2;
		}
	}
	if (spec == NULL) {
		fprintf(stderr, "usage: floor [-q] -p inet:PORT@HOST|unix:/path\n");
		return 2;
	}
	if (strncmp(spec, "unix:", 5) == 0)
		unlink(spec + 5);
	/* The unix socket: the benchmark gives it to Postfix's group. */
	umask(0007);
	if (smfi_setconn((char *)spec) != MI_SUCCESS || smfi_setbacklog(128) != MI_SUCCESS ||
	    smfi_register(desc) != MI_SUCCESS) {
		fprintf(stderr, "floor: libmilter setup failed\n");
		return 1;
	}
	if (smfi_opensocket(1) != MI_SUCCESS) {
		fprintf(stderr, "floor: cannot listen on %s\n", spec);
		return 1;
	}
	return smfi_main() == MI_SUCCESS ? 0 : 1;
}
