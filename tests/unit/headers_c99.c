/* Compiled with -std=c99 -pedantic -Werror: the public headers are C99. */
#include <sonde.h>
int sonde_headers_c99_check(void);
int sonde_headers_c99_check(void)
{
    return SONDE_OK;
}
