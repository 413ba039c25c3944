// Every problem the runtime finds in its input is thrown as tachyon::Error;
// the addon turns it into a JS Error carrying the same message.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace tachyon {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  throw Error(out.str());
}

}  // namespace tachyon
