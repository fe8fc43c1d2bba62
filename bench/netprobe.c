/* bench/services.sh's probe, built into its image: per-operation latency of
 * the things a pod does when it talks to a Service, N times in one process
 * (a shell loop of short-lived tools would time fork and exec instead).
 *
 *   netprobe serve PORT              TCP: accept, read 1 byte, write 1, close
 *   netprobe connect IP PORT N       N x (connect, write 1 byte, read 1, close)
 *   netprobe resolve NAME N          N x getaddrinfo(NAME, AF_UNSPEC, stream)
 *   netprobe query SERVER NAME N     N x one DNS A query over UDP to SERVER:53
 *
 * The clients print one line: `n=N mean_us=.. p50_us=.. p90_us=.. p99_us=..`
 * and exit 1 on any failure (a benchmark of failures measures nothing).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void print_stats(double *us, int n) {
  double sum = 0;
  for (int i = 0; i < n; i++) sum += us[i];
  qsort(us, n, sizeof *us, cmp);
  printf("n=%d mean_us=%.1f p50_us=%.1f p90_us=%.1f p99_us=%.1f\n", n, sum / n,
         us[n / 2], us[n * 9 / 10], us[n * 99 / 100]);
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

static struct sockaddr_in addr_of(const char *ip, int port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
    fprintf(stderr, "netprobe: not an IPv4 address: %s\n", ip);
    exit(2);
  }
  return a;
}

__attribute__((noreturn)) static void serve(int port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 128)) die("listen");
  for (;;) {
    int c = accept(s, NULL, NULL);
    char b;
    if (c < 0) continue;
    /* The server closes first: TIME_WAIT stays on its side, and the
     * client's ports are free again for the next run. */
    if (read(c, &b, 1) == 1) (void)!write(c, &b, 1);
    close(c);
  }
}

static int connect_loop(const char *ip, int port, int n, double *us) {
  struct sockaddr_in a = addr_of(ip, port);
  for (int i = 0; i < n; i++) {
    double t = now_us();
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    char b = 'x';
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(s, (struct sockaddr *)&a, sizeof a)) die("connect");
    if (write(s, &b, 1) != 1 || read(s, &b, 1) != 1) die("request");
    close(s);
    us[i] = now_us() - t;
  }
  return 0;
}

static int resolve_loop(const char *name, int n, double *us) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
  for (int i = 0; i < n; i++) {
    double t = now_us();
    int e = getaddrinfo(name, NULL, &hints, &res);
    if (e) {
      fprintf(stderr, "netprobe: %s: %s\n", name, gai_strerror(e));
      exit(1);
    }
    freeaddrinfo(res);
    us[i] = now_us() - t;
  }
  return 0;
}

static int query_loop(const char *server, const char *name, int n, double *us) {
  unsigned char q[512], r[512];
  size_t len = 12;
  memset(q, 0, 12);
  q[2] = 0x01; /* RD */
  q[5] = 1;    /* one question */
  for (const char *p = name; *p;) {
    const char *dot = strchr(p, '.');
    size_t l = dot ? (size_t)(dot - p) : strlen(p);
    if (l == 0 || l > 63 || len + l + 6 > sizeof q) {
      fprintf(stderr, "netprobe: bad name %s\n", name);
      exit(2);
    }
    q[len++] = l;
    memcpy(q + len, p, l);
    len += l;
    p += l + (dot != NULL);
  }
  q[len++] = 0;
  q[len++] = 0, q[len++] = 1; /* A */
  q[len++] = 0, q[len++] = 1; /* IN */
  struct sockaddr_in a = addr_of(server, 53);
  struct timeval two = {.tv_sec = 2};
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &two, sizeof two);
  if (connect(s, (struct sockaddr *)&a, sizeof a)) die("connect");
  for (int i = 0; i < n; i++) {
    double t = now_us();
    q[0] = i >> 8, q[1] = i;
    if (send(s, q, len, 0) != (ssize_t)len) die("send");
    ssize_t got;
    do got = recv(s, r, sizeof r, 0);
    while (got >= 2 && (r[0] != q[0] || r[1] != q[1]));
    if (got < 12) die("recv");
    /* NOERROR with at least one answer. */
    if ((r[3] & 0x0f) != 0 || (r[6] == 0 && r[7] == 0)) {
      fprintf(stderr, "netprobe: %s: no answer (rcode %d)\n", name, r[3] & 0x0f);
      exit(1);
    }
    us[i] = now_us() - t;
  }
  return 0;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  if (!strcmp(mode, "serve") && argc == 3) serve(atoi(argv[2]));
  int n = atoi(argv[argc - 1]);
  double *us = n > 0 ? calloc(n, sizeof *us) : NULL;
  if (!strcmp(mode, "connect") && argc == 5 && us)
    connect_loop(argv[2], atoi(argv[3]), n, us);
  else if (!strcmp(mode, "resolve") && argc == 4 && us)
    resolve_loop(argv[2], n, us);
  else if (!strcmp(mode, "query") && argc == 5 && us)
    query_loop(argv[2], argv[3], n, us);
  else {
    fprintf(stderr, "usage: netprobe serve PORT | connect IP PORT N | resolve NAME N | query SERVER NAME N\n");
    return 2;
  }
  print_stats(us, n);
  return 0;
}
