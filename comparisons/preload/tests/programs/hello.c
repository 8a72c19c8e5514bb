/* Compiled by gcc running under the preloaded library, then run under it too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct node { struct node *next; char *text; };

int main(void) {
    struct node *head = NULL;
    for (int i = 0; i < 10000; i++) {
        struct node *n = malloc(sizeof *n);
        n->text = malloc(32);
        snprintf(n->text, 32, "node %d", i);
        n->next = head;
        head = n;
    }
    unsigned long sum = 0;
    int count = 0;
    while (head) {
        struct node *n = head;
        head = n->next;
        sum += strlen(n->text) * (unsigned long)(count % 13);
        count++;
        free(n->text);
        free(n);
    }
    char *grow = NULL;
    size_t len = 0;
    for (int i = 0; i < 5000; i++) {
        grow = realloc(grow, len + 8);
        memcpy(grow + len, "abcdefgh", 8);
        len += 8;
    }
    printf("hello from a preloaded gcc: %d nodes, sum %lu, grown to %zu bytes, last %c\n", count, sum, len,
           grow[len - 1]);
    free(grow);
    return 0;
}
