#include "rootcertd/yaml_tree.hpp"

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
