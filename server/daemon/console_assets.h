// The review console's static files (server/console/*), compiled into the daemon by
// cmake/embed_files.cmake: the page needs no build step, no CDN and no files at run time.
#ifndef QLORAD_SERVER_DAEMON_CONSOLE_ASSETS_H_
#define QLORAD_SERVER_DAEMON_CONSOLE_ASSETS_H_

#include <cstddef>

namespace qlorad::server {

struct EmbeddedFile {
  const char* name;  // basename, e.g. "console.js"; nullptr ends kEmbeddedFiles
  const char* data;
  size_t size;
};

extern const EmbeddedFile kEmbeddedFiles[];

}  // namespace qlorad::server

#endif  // QLORAD_SERVER_DAEMON_CONSOLE_ASSETS_H_
