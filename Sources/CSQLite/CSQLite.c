// (SwiftPM needs a source file in a C target; the module is include/CSQLite.h.)
#include "CSQLite.h"
