// A rapidcheck property split into shards that run as tests of their own, so ctest
// spreads one slow property over every core. Shard k of n runs its share of the
// configured cases (RC_PARAMS max_success) from a seed of its own; rapidcheck spreads
// one run's sizes evenly over its cases, so every shard still reaches the largest size,
// and together the shards run as many cases as the unsharded property did.
#pragma once

#include <gtest/gtest.h>  // before rapidcheck/gtest.h, which uses it without including it

#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <sstream>
#include <string>
#include <utility>

namespace kho::test {

template <class Testable>
void check_property_shard(Testable&& testable, unsigned shard, unsigned shards) {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  rc::detail::TestMetadata metadata;
  metadata.id = std::string(info->test_suite_name()) + "/" + info->name();
  metadata.description = info->name();
  rc::detail::TestParams params = rc::detail::configuration().testParams;
  const int cases = params.maxSuccess;
  params.maxSuccess = cases / static_cast<int>(shards) + (static_cast<int>(shard) < cases % static_cast<int>(shards));
  if (params.maxSuccess == 0) GTEST_SKIP() << "max_success " << cases << " leaves shard " << shard << " no case";
  // A distinct, reproducible seed per shard: the same RC_PARAMS seed replays a failure.
  params.seed ^= 0x9e3779b97f4a7c15ull * (shard + 1);
  const auto result = rc::detail::checkTestable(std::forward<Testable>(testable), metadata, params);
  if (!result.template is<rc::detail::SuccessResult>()) {
    std::ostringstream message;
    rc::detail::printResultMessage(result, message);
    FAIL() << "seed " << params.seed << "\n" << message.str();
  }
}

}  // namespace kho::test
