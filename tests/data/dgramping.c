/* One ICMP echo to 127.0.0.1 over an ICMP datagram socket (no capability
 * needed when net.ipv4.ping_group_range covers the caller's group), as a
 * non-root `ping` without file capabilities does it. Prints "pinged" on a
 * reply. Built statically by the tests (cc -static) and put into a test
 * image. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int main(void) {
    int fd = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
    if (fd < 0) {
        perror("socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)");
        return 1;
    }
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in to = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    struct icmphdr echo = {.type = ICMP_ECHO};
    echo.un.echo.sequence = htons(1);
    if (sendto(fd, &echo, sizeof echo, 0, (struct sockaddr *)&to, sizeof to) < 0) {
        perror("sendto");
        return 1;
    }
    char reply[256];
    ssize_t n = recv(fd, reply, sizeof reply, 0);
    if (n < (ssize_t)sizeof echo || ((struct icmphdr *)reply)->type != ICMP_ECHOREPLY) {
        perror("recv");
        return 1;
    }
    printf("pinged\n");
    return 0;
}
