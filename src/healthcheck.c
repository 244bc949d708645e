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

#include "healthcheck.h"

#define HEALTHCHECK_TIMEOUT_S 3

static int
healthcheck_fail(const char *what, const char *why)
{
	fprintf(stderr, "healthcheck: %s: %s\n", what, why);
	return 1;
}

int
healthcheck_run(void)
{
	const char *p = getenv("PORT");
	long port = p && *p ? strtol(p, NULL, 10) : 8080;
	struct timeval tv = { HEALTHCHECK_TIMEOUT_S, 0 };
	struct sockaddr_in sa;
	char req[128], resp[512];
	ssize_t n;
	size_t got = 0;
	int fd, len;

	if (port < 1 || port > 65535)
		return healthcheck_fail("PORT", "not a port number");
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return healthcheck_fail("socket", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return healthcheck_fail("connect", strerror(errno));
	}
	len = snprintf(req, sizeof(req), "GET /health HTTP/1.1\r\nHost: "
	    "127.0.0.1:%ld\r\nConnection: close\r\n\r\n", port);
	if (write(fd, req, (size_t)len) != len) {
		close(fd);
		return healthcheck_fail("write", strerror(errno));
	}
	while (got < sizeof(resp) - 1 &&
	    (n = read(fd, resp + got, sizeof(resp) - 1 - got)) > 0)
		got += (size_t)n;
	close(fd);
	resp[got] = '\0';
	if (strncmp(resp, "HTTP/1.1 200 ", 13) != 0 || !strstr(resp, "\"ok\""))
		return healthcheck_fail("GET /health", got ? strtok(resp, "\r") :
		    "no answer");
	return 0;
}
