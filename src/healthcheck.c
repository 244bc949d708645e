/* healthcheck.c - `gopulse-messages healthcheck`, a one-shot probe.
 *
 * A separate short-lived process, not the service: plain blocking sockets
 * with timeouts are right here, and keep curl out of the image. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "config.h"
#include "healthcheck.h"

#define HEALTHCHECK_TIMEOUT_S 3

/* Always 1: Docker reserves exit status 2 of a HEALTHCHECK command. */
static int
healthcheck_fail(const char *what, const char *why)
{
	fprintf(stderr, "healthcheck: %s%s%s\n", what, *why ? ": " : "", why);
	return 1;
}

/* Where a client reaches a service bound to bind_addr (already checked by
 * the configuration's parser): a wildcard address is dialled on loopback
 * of its family, anything else as it is. host gets the Host header's
 * form, "[::1]" for IPv6. */
static socklen_t
healthcheck_target(const char *bind_addr, int port, struct sockaddr_storage *ss,
    char *host, size_t hostlen)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	char ip[INET6_ADDRSTRLEN];

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, bind_addr, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		if (sin->sin_addr.s_addr == htonl(INADDR_ANY))
			sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		inet_ntop(AF_INET, &sin->sin_addr, host, (socklen_t)hostlen);
		return sizeof(*sin);
	}
	if (inet_pton(AF_INET6, bind_addr, &sin6->sin6_addr) != 1)
		return 0;
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons((uint16_t)port);
	if (IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr))
		sin6->sin6_addr = in6addr_loopback;
	inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
	snprintf(host, hostlen, "[%s]", ip);
	return sizeof(*sin6);
}

int
healthcheck_run(void)
{
	struct timeval tv = { HEALTHCHECK_TIMEOUT_S, 0 };
	struct sockaddr_storage ss;
	struct config cfg;
	char err[512], host[INET6_ADDRSTRLEN + 2], req[160], resp[512];
	socklen_t sslen;
	ssize_t n;
	size_t got = 0;
	int fd, len, port;

	/* The service's own parser: a PORT it would refuse fails here too. */
	memset(&cfg, 0, sizeof(cfg));
	if (config_load_var(&cfg, "PORT", err, sizeof(err)) != 0 ||
	    config_load_var(&cfg, "BIND_ADDR", err, sizeof(err)) != 0) {
		config_fini(&cfg);
		return healthcheck_fail(err, "");
	}
	port = cfg.port;
	sslen = healthcheck_target(cfg.bind_addr, port, &ss, host,
	    sizeof(host));
	config_fini(&cfg);
	len = snprintf(req, sizeof(req),
	    "GET /health HTTP/1.1\r\nHost: "
	    "%s:%d\r\nConnection: close\r\n\r\n",
	    host, port);
	if (sslen == 0)
		return healthcheck_fail("BIND_ADDR", "not an IP address");
	fd = socket(ss.ss_family, SOCK_STREAM, 0);
	if (fd < 0)
		return healthcheck_fail("socket", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&ss, sslen) != 0 ||
	    write(fd, req, (size_t)len) != len) {
		int e = errno;

		snprintf(err, sizeof(err), "GET http://%s:%d/health", host,
		    port);
		close(fd);
		return healthcheck_fail(err, strerror(e));
	}
	while (got < sizeof(resp) - 1 &&
	    (n = read(fd, resp + got, sizeof(resp) - 1 - got)) > 0)
		got += (size_t)n;
	close(fd);
	resp[got] = '\0';
	if (strncmp(resp, "HTTP/1.1 200 ", 13) != 0 || !strstr(resp, "\"ok\""))
		return healthcheck_fail("GET /health",
		    got ? strtok(resp, "\r") : "no answer");
	return 0;
}
