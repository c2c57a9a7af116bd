// Snapshots of a serving index (docs/formats.md, "Snapshots").
//
//   DIR/MANIFEST.argent, DIR/part-*.argent      the build
//   DIR/snapshot-<sequence>/                    a snapshot: a complete index directory (manifest
//                                               and every partition) holding the items after
//                                               every mutation up to <sequence>
//   DIR/SNAPSHOT.argent                         names the latest complete snapshot and its
//                                               sequence; written atomically, last
//   DIR/wal.log                                 mutations after it (coordinator/wal.h)
//
// Each rank writes its own partitions into the new snapshot directory; rank 0 then writes the
// manifest and, last, the pointer. A crash before the pointer is written leaves the previous
// snapshot in force (the half-written directory is removed at the next start); a crash after it
// but before the log is truncated is harmless, since replay skips records the snapshot covers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "shard/index_meta.h"
#include "shard/shard_index.h"

namespace argent {

struct SnapshotPointer {
  uint64_t sequence = 0;  // every log record up to this one is in the snapshot
  std::string dir;        // directory name inside the index directory; "" = the build itself
  int64_t items = 0;
  // The partition map when the snapshot was taken (empty for the build and for snapshots
  // written before maps were versioned): the owner of each partition and its epoch.
  uint64_t map_epoch = 0;
  std::vector<int> map_owners;
};

// DIR/SNAPSHOT.argent, or {0, "", build items} when there is none. Throws Error(kDataLoss) for
// a corrupt pointer or one naming a directory without a manifest.
SnapshotPointer read_snapshot_pointer(const std::string& index_dir);
// The directory holding the partitions to load: the snapshot's, or the build's.
std::string snapshot_data_dir(const std::string& index_dir, const SnapshotPointer& p);
// "snapshot-00000000000000000042"
std::string snapshot_dir_name(uint64_t sequence);

// One rank's part: writes the live items of every partition `shard` holds into
// index_dir/dir_name (created if missing), each file atomically.
void write_shard_snapshot(const ShardIndex& shard, const std::string& index_dir,
                          const std::string& dir_name);
// Rank 0, once every rank has written: the snapshot's manifest, then the pointer.
void commit_snapshot(const std::string& index_dir, IndexMeta meta, const SnapshotPointer& p);
// Removes snapshot-* directories of index_dir other than `keep` (unfinished or superseded).
void remove_other_snapshots(const std::string& index_dir, const std::string& keep);

}  // namespace argent
