/* retcode: the return codes every layer shares (nginx's OK / AGAIN / ERROR). */
#ifndef GP_RETCODE_H
#define GP_RETCODE_H

enum { GP_OK = 0, GP_AGAIN = 1, GP_ERROR = -1 };

#endif
