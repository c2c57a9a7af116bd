// Checks of a client's request against the index and the config, run on the gateway thread
// before anything of the request is copied or queued. Every cap (dimension, k, rerank depth,
// excluded ids, filter length and nesting, items per upsert, features per item, ids per delete)
// is compared with the request's own counts first, so an oversize request costs no allocation
// beyond its parsed message (itself bounded by serve.max_message_bytes). Pure functions of their
// arguments: the fuzz targets (fuzz/) call them on arbitrary messages.
#pragma once

#include <string>

#include "argent/v1/service.pb.h"
#include "common/config.h"
#include "coordinator/request_queue.h"
#include "shard/filter.h"
#include "shard/index_meta.h"

namespace argent {

// Checks a SearchRequest and fills `out`; returns an empty string when valid, else the
// INVALID_ARGUMENT message naming the field, its value and the allowed range.
std::string validate_search(const v1::SearchRequest& request, const IndexMeta& meta,
                            const Config& config, PendingSearch* out);

// Nesting depth of a parsed filter: a term is 1, NOT/AND/OR add one level.
int filter_depth(const FilterExpr& expr);

// Checks a filter's text against gateway.max_filter_chars (before parsing), parses it and checks
// its nesting against gateway.max_filter_depth; "" when valid (or empty).
std::string filter_problem(const std::string& filter, const GatewayConfig& limits);

}  // namespace argent
