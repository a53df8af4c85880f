// Shim header: the system headers this module exposes to Swift.
#include <gsasl.h>
