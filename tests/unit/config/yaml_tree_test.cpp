#include "rootcertd/config/yaml_tree.hpp"

#include <gtest/gtest.h>
#include <yaml-cpp/exceptions.h>

using rootcertd::YamlTree;

TEST(YamlTree, KeepsMappingsInFileOrderWithTheirMarks) {
    const YamlTree tree("b: 1\na:\n  - x\n  - ~\n");
    const auto root = tree.root();
    ASSERT_TRUE(root && root->IsMap());
    ASSERT_EQ(root->size(), 2u);
    EXPECT_EQ(root->key(0).Scalar(), "b");
    EXPECT_EQ(root->value(0).Scalar(), "1");
    EXPECT_EQ(root->key(1).Scalar(), "a");
    const auto list = root->value(1);
    ASSERT_TRUE(list.IsSequence());
    ASSERT_EQ(list.size(), 2u);
    EXPECT_EQ(list[0].Scalar(), "x");
    EXPECT_EQ(list[0].Mark().line, 2);
    EXPECT_EQ(list[0].Mark().column, 4);
    EXPECT_TRUE(list[1].IsNull());
}

TEST(YamlTree, AnAliasIsTheAnchoredNode) {
    const YamlTree tree("base: &b {org: o, id: i}\ncopy: *b\n");
    const auto copy = tree.root()->value(1);
    ASSERT_TRUE(copy.IsMap());
    EXPECT_EQ(copy.value(1).Scalar(), "i");
    EXPECT_EQ(copy.Mark().line, 0);  // where the anchored mapping is
}

TEST(YamlTree, NoDocumentHasNoRoot) {
    EXPECT_FALSE(YamlTree("# only a comment\n").root());
    EXPECT_FALSE(YamlTree("").root());
}

TEST(YamlTree, SyntaxErrorsThrowWithTheirPlace) {
    try {
        YamlTree tree("a: [1, 2\nb: 3\n");
        FAIL() << "no error";
    } catch (const YAML::ParserException& e) {
        EXPECT_FALSE(e.msg.empty());
        EXPECT_GE(e.mark.line, 0);
    }
}

TEST(YamlTree, PlainJsonMayBeReadWithoutMarksIntoTheSameNodes) {
    const std::string text =
        R"({"b": [1, -2.5e3, true, null, "x\u00e9\n"], "a": {"": "", "k": "v"}})";
    const YamlTree with(text), without(text, YamlTree::Marks::optional);
    EXPECT_TRUE(with.has_marks());
    ASSERT_FALSE(without.has_marks());
    const auto w = *with.root(), o = *without.root();
    ASSERT_TRUE(o.IsMap());
    ASSERT_EQ(o.size(), w.size());
    EXPECT_EQ(o.key(0).Scalar(), "b");
    const auto list = o.value(0);
    ASSERT_TRUE(list.IsSequence());
    ASSERT_EQ(list.size(), 5u);
    for (std::size_t i = 0; i < 5; ++i) {
        EXPECT_EQ(list[i].kind(), w.value(0)[i].kind()) << i;
        EXPECT_EQ(list[i].Scalar(), w.value(0)[i].Scalar()) << i;  // numbers keep their text
    }
    EXPECT_EQ(list[1].Scalar(), "-2.5e3");
    EXPECT_TRUE(list[3].IsNull());
    EXPECT_EQ(list[4].Scalar(), "x\xc3\xa9\n");
    EXPECT_EQ(o.value(1).key(0).Scalar(), "");
    EXPECT_EQ(o.value(1).value(1).Scalar(), "v");
    EXPECT_TRUE(o.value(1).Mark().is_null());
}

TEST(YamlTree, WhatIsNotStrictJsonIsReadAsYamlWithMarks) {
    // Flow YAML, a comment, a trailing comma, a second document: yaml-cpp reads them.
    for (const char* text : {"{a: 1}", "{\"a\": 1} # note", "[1, 2,]", "{\"a\": 1}\n--- 2\n"}) {
        const YamlTree tree(text, YamlTree::Marks::optional);
        EXPECT_TRUE(tree.has_marks()) << text;
        ASSERT_TRUE(tree.root()) << text;
    }
    EXPECT_THROW(YamlTree("{\"a\": [1}", YamlTree::Marks::optional), YAML::ParserException);
}
