// CSwiftRuntime: the header is all; SwiftPM wants one source file per C target.
#include "shim.h"
