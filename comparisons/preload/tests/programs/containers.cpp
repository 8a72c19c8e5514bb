// A C++ workload for the preload tests: four threads, each with its own standard containers
// (ordered and hashed maps, vectors that grow and shrink, strings), over-aligned `new`
// (C++17: aligned_alloc / posix_memalign underneath), arrays of up to 70 KB, and exceptions
// (their objects come from malloc too). Each thread prints a checksum of what it built, so a
// lost or corrupted byte changes the output; the run compares it with a run without the
// library.
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

// A small generator of our own, so the output does not depend on the standard library's.
struct Rng {
    uint64_t s;
    uint64_t next() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        return s;
    }
};

struct alignas(64) Line {
    uint64_t words[8];
};

uint64_t work(int t) {
    Rng r{0x9e3779b97f4a7c15ULL * (t + 1)};
    std::map<std::string, std::vector<int>> lists;
    std::unordered_map<uint32_t, std::string> strings;
    std::vector<std::unique_ptr<Line>> lines;
    uint64_t sum = 0;
    for (int i = 0; i < 60000; i++) {
        auto &v = lists["key" + std::to_string(r.next() % 3000)];
        v.push_back(i);
        if (v.size() > 40) {
            for (int x : v) sum += x;
            v.clear();
            v.shrink_to_fit();
        }
        strings[r.next() % 10000] = std::string(r.next() % 300, char('a' + i % 26));
        if (r.next() % 3 == 0) strings.erase(r.next() % 10000);
        auto line = std::make_unique<Line>();
        if (reinterpret_cast<uintptr_t>(line.get()) % alignof(Line) != 0) {
            std::printf("misaligned Line in thread %d\n", t);
            return 0;
        }
        line->words[7] = i;
        lines.push_back(std::move(line));
        if (lines.size() > 500) {
            for (auto &l : lines) sum += l->words[7];
            lines.clear();
        }
        size_t n = r.next() % 70000 + 1;
        std::unique_ptr<unsigned char[]> big(new unsigned char[n]);
        big[0] = 1;
        big[n - 1] = 2;
        sum += big[0] + big[n - 1];
        if (i % 1000 == 0) {
            try {
                throw std::runtime_error("thrown " + std::to_string(i));
            } catch (const std::runtime_error &e) {
                sum += std::string(e.what()).size();
            }
        }
    }
    for (auto &kv : lists)
        for (int x : kv.second) sum += x + kv.first.size();
    for (auto &kv : strings) sum += kv.first + kv.second.size() + (kv.second.empty() ? 0 : kv.second[0]);
    return sum;
}

}  // namespace

int main() {
    uint64_t results[4] = {};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; t++) threads.emplace_back([t, &results] { results[t] = work(t); });
    for (auto &th : threads) th.join();
    for (int t = 0; t < 4; t++) std::printf("thread %d: %llu\n", t, (unsigned long long)results[t]);
    return 0;
}
