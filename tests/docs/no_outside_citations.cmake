# Fails when the product cites documents that are not in the repository: what the code implements is
# described in docs/ (docs/protocol.md, docs/architecture.md) and the README, and nothing may send a reader
# elsewhere (an upper-case protocol or design document beside the checkout, a folder next to it).
file(GLOB_RECURSE files LIST_DIRECTORIES false
     ${ROOT}/include/*.hpp ${ROOT}/tests/*.cpp ${ROOT}/tests/*.hpp ${ROOT}/tests/*.mjs ${ROOT}/tests/*.sh
     ${ROOT}/tests/*.txt ${ROOT}/tests/*.cmake ${ROOT}/examples/*.cpp ${ROOT}/examples/*.hpp ${ROOT}/examples/*.mjs
     ${ROOT}/examples/*.js ${ROOT}/scripts/*.sh ${ROOT}/docs/*.md)
list(APPEND files ${ROOT}/README.md ${ROOT}/CMakeLists.txt)
list(FILTER files EXCLUDE REGEX "/node_modules/|/no_outside_citations.cmake$")
set(found "")
foreach(file ${files})
  file(STRINGS ${file} lines REGEX "(\\.\\./shared|(^|[^/a-z_])(PROTOCOL|DESIGN)\\.md)")
  if(lines)
    list(APPEND found "${file}: ${lines}")
  endif()
endforeach()
if(found)
  string(REPLACE ";" "\n" found "${found}")
  message(FATAL_ERROR "documents outside the repository are cited:\n${found}")
endif()
list(LENGTH files count)
message(STATUS "${count} files cite only the repository's own documents")
