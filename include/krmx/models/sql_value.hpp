#pragma once
// Values bound to and read from SQL statements by the projection targets (SqliteProjection,
// PostgresProjection): one type for both, so a reducer's rows move between them unchanged.

#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace krmx {

/// A value bound to or read from an SQL statement.
using SqlValue = std::variant<std::nullptr_t, std::int64_t, double, std::string>;
/// One row of a query's result, its columns in order.
using SqlRow = std::vector<SqlValue>;

}  // namespace krmx
