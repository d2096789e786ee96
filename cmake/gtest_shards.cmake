# portcullis_add_gtest_shards(TARGET LABEL COUNT): runs a GoogleTest binary as COUNT CTest
# tests, each one shard of it (GTEST_TOTAL_SHARDS / GTEST_SHARD_INDEX), instead of one
# process per test case. A process of a sanitizer build costs about 0.4 s of CPU to start
# and stop (shadow memory, the leak check at exit): one per test case was ~5 minutes of CPU
# for `make test`, more than the tests themselves. Shards still let `ctest -j` spread the
# work over the cores. On a failure the shard's output names the test (GTEST_BRIEF prints
# only failures); run one test with `TARGET --gtest_filter=Suite.Name`.
function(portcullis_add_gtest_shards target label count)
  math(EXPR last "${count} - 1")
  foreach(index RANGE ${last})
    math(EXPR n "${index} + 1")
    set(name "${label}.${target}.${n}-of-${count}")
    add_test(NAME ${name} COMMAND $<TARGET_FILE:${target}>)
    # The timeout bounds a hang: a shard takes well under a minute on an idle machine.
    set_tests_properties(${name} PROPERTIES LABELS ${label} TIMEOUT 1200
      ENVIRONMENT "GTEST_TOTAL_SHARDS=${count};GTEST_SHARD_INDEX=${index};GTEST_BRIEF=1")
  endforeach()
endfunction()
