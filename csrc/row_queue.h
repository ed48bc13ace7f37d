// Rows handed out to parallel tasks a chunk at a time (fused_cpu.cpp's skinny kernel), where
// at::parallel_for gives each thread a fixed share. On a shared VM one core often runs slower
// than the other (another tenant on its sibling): with fixed halves the call then runs at the
// slow core's pace (197 x 768 -> 96 on 2 cores: 150-165 us, where one core alone takes 200 us),
// while tasks that take chunks from one counter finish together. Chunks shrink towards the end:
// a quarter of the rows left per task, rounded up to whole steps, at most `max_chunk` rows.
// Which task takes a chunk never changes a value: every row is computed alone.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

class RowQueue {
 public:
  // Rows [0, rows) in chunks of at most max_chunk rows, multiples of `step` but for the last,
  // shared by `tasks` tasks.
  RowQueue(int64_t rows, int64_t max_chunk, int64_t step, int64_t tasks)
      : rows_(rows), max_chunk_(std::max(max_chunk, step)), step_(step),
        spread_(4 * std::max<int64_t>(tasks, 1)) {}

  // The next chunk, [start, start + count); false once every row is taken.
  bool next(int64_t& start, int64_t& count) {
    int64_t first = next_.load(std::memory_order_relaxed);
    do {
      if (first >= rows_) return false;
      const int64_t left = rows_ - first;
      const int64_t share = (left + spread_ - 1) / spread_;
      count = std::min({left, max_chunk_, (share + step_ - 1) / step_ * step_});
    } while (!next_.compare_exchange_weak(first, first + count, std::memory_order_relaxed));
    start = first;
    return true;
  }

 private:
  const int64_t rows_, max_chunk_, step_, spread_;
  std::atomic<int64_t> next_{0};
};

// Runs task(queue) on at most at::get_num_threads() threads, one call each, fewer when the rows
// hold less than min_task_rows for each: every call takes chunks from one RowQueue until none is
// left. Nested in another parallel region, a single call takes them all.
template <class Task>
void share_rows(int64_t rows, int64_t max_chunk, int64_t step, int64_t min_task_rows,
                const Task& task) {
  const int64_t tasks = std::clamp<int64_t>(rows / std::max<int64_t>(min_task_rows, 1), 1,
                                            at::get_num_threads());
  RowQueue queue(rows, max_chunk, step, tasks);
  at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) task(queue);
  });
}
