#pragma once
// Everything of krmx that needs SQLite: include on purpose and link the `krmx::sqlite` CMake target.

#include "krmx/store/sqlite_checkpoint_store.hpp"
#include "krmx/store/sqlite_event_store.hpp"
