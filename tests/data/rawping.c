/* One ICMP echo to 127.0.0.1 over a raw socket, as Debian's ping does when
 * it runs with its file capability cap_net_raw=ep. Prints "pinged" on a
 * reply. Built statically by the tests (cc -static); tests/security.rs
 * gives it the file capability in the image it builds. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static unsigned short checksum(const void *data, int len) {
    const unsigned short *p = data;
    unsigned long sum = 0;
    for (; len > 1; len -= 2)
        sum += *p++;
    if (len)
        sum += *(const unsigned char *)p;
    sum = (sum >> 16) + (sum & 0xffff);
    sum += sum >> 16;
    return (unsigned short)~sum;
}

int main(void) {
    int fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    if (fd < 0) {
        perror("socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)");
        return 1;
    }
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in to = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    struct icmphdr echo = {.type = ICMP_ECHO};
    echo.un.echo.id = htons((unsigned short)getpid());
    echo.un.echo.sequence = htons(1);
    echo.checksum = checksum(&echo, sizeof echo);
    if (sendto(fd, &echo, sizeof echo, 0, (struct sockaddr *)&to, sizeof to) < 0) {
        perror("sendto");
        return 1;
    }
    for (int i = 0; i < 4; i++) {
        char reply[256];
        ssize_t n = recv(fd, reply, sizeof reply, 0);
        if (n < 0) {
            perror("recv");
            return 1;
        }
        struct iphdr *ip = (struct iphdr *)reply;
        struct icmphdr *icmp = (struct icmphdr *)(reply + ip->ihl * 4);
        if (icmp->type == ICMP_ECHOREPLY) {
            printf("pinged\n");
            return 0;
        }
    }
    fprintf(stderr, "no echo reply\n");
    return 1;
}
