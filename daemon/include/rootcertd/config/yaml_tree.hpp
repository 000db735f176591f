// A YAML document read through yaml-cpp's event parser into one flat arena.
//
// YAML::Load builds a graph of shared_ptr'd nodes, which for a large config
// was much of loading the file and held megabytes while the daemon started
// (docs/architecture.md, "Config as events"). The config reader walks the
// document once, so a read-only arena of plain nodes is enough: the same
// scanner and parser (same syntax, same errors, same marks), no graph.
//
// yaml-cpp's scanner is still slow per byte. Fleets generate their configs,
// often as JSON, so a text that is plain JSON may be read by Boost.JSON's
// parser instead, much faster but without line and column marks. A caller
// that reports an error reads the text again with them (see Marks).
#pragma once

#include <yaml-cpp/mark.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rootcertd {

class YamlTree;

// A read-only view of one node, valid while its YamlTree lives.
class YamlNode {
  public:
    enum class Kind : std::uint8_t { null, scalar, sequence, map };

    Kind kind() const;
    bool IsNull() const { return kind() == Kind::null; }
    bool IsScalar() const { return kind() == Kind::scalar; }
    bool IsSequence() const { return kind() == Kind::sequence; }
    bool IsMap() const { return kind() == Kind::map; }
    // The text of a scalar; empty for anything else (as YAML::Node::Scalar()).
    std::string_view Scalar() const;
    YAML::Mark Mark() const;
    // Items of a sequence, or key/value pairs of a map.
    std::size_t size() const;
    YamlNode operator[](std::size_t i) const;  // sequence item I
    YamlNode key(std::size_t i) const;         // map pair I
    YamlNode value(std::size_t i) const;

  private:
    friend class YamlTree;
    YamlNode(const YamlTree* tree, std::uint32_t index) : tree_(tree), index_(index) {}
    YamlNode child(std::size_t i) const;

    const YamlTree* tree_;
    std::uint32_t index_;
};

class YamlTree {
  public:
    // `required`: every node has its line and column. `optional`: a text
    // that is strict JSON (RFC 8259, UTF-8, no comments) is read as JSON,
    // without them: Mark() is null everywhere. Anything else is read by
    // yaml-cpp with marks. Where yaml-cpp also reads the text, the nodes
    // are the same; it refuses a few valid JSON texts (a key and its ':' on
    // different lines, a key over 1,024 characters), which are then read as
    // JSON says.
    enum class Marks : std::uint8_t { required, optional };

    // Parses the first document of TEXT. Throws YAML::ParserException (with
    // its mark) on a syntax error, as YAML::Load does.
    explicit YamlTree(std::string_view text, Marks marks = Marks::required);

    // False when the nodes were read without marks.
    bool has_marks() const { return has_marks_; }

    // The document's root; nothing when TEXT holds no document.
    std::optional<YamlNode> root() const;

  private:
    friend class YamlNode;
    friend class TreeBuilder;
    // 12 bytes: a fleet's config is tens of thousands of nodes, all held
    // while the config is read (bench/RESULTS.md, "--once peak RSS").
    struct Node {
        YamlNode::Kind kind;
        // A collection's children: children_[first, first + count). A
        // scalar's text: text_.substr(first, count).
        std::uint32_t first = 0;
        std::uint32_t count = 0;
    };
    std::vector<Node> nodes_;
    std::vector<YAML::Mark> marks_;  // one per node, when has_marks_
    std::vector<std::uint32_t> children_;
    std::string text_;  // every scalar's text, one after the other
    bool has_root_ = false;
    bool has_marks_ = true;
};

}  // namespace rootcertd
