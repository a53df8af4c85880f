// Shim header: the system headers this module exposes to Swift.
#include <idn2.h>
