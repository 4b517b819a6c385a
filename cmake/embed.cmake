# Turn a file into a C source defining
#   const unsigned char SYMBOL[]  (the bytes, NUL-terminated)
#   const size_t SYMBOL_len       (without the NUL)
# Usage: cmake -DIN=file -DOUT=file.c -DSYMBOL=name -P embed.cmake
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" hexlen)
math(EXPR len "${hexlen} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
# Break the initialiser into lines of 16 bytes.
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){16})" "\\1\n" bytes "${bytes}")
file(WRITE ${OUT}.tmp "/* Generated from ${IN} by cmake/embed.cmake; do not edit. */\n#include <stddef.h>\n__attribute__((visibility(\"hidden\"))) const unsigned char ${SYMBOL}[] = {\n${bytes}0x00};\n__attribute__((visibility(\"hidden\"))) const size_t ${SYMBOL}_len = ${len};\n")
file(RENAME ${OUT}.tmp ${OUT})
