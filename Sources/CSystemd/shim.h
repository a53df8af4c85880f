// Shim header: the system headers this module exposes to Swift.
#include <systemd/sd-daemon.h>
