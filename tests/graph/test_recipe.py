import pytest

from graphrec.errors import ConfigError, DataError
from graphrec.graph import build, load_recipe
from graphrec.graph.recipe import default_recipes_dir, resolve_source
from tests.conftest import write_tiny


def recipe_file(tmp_path, text):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


MINIMAL = "name: x\ninteractions:\n  path: inter.csv\n"


def test_every_shipped_recipe_loads():
    names = {path.stem for path in default_recipes_dir().glob("*.yaml")}
    assert {"ml-100k", "ml-1m", "lastfm-2k", "template", "synthetic"} <= names
    for name in names:
        recipe, _ = load_recipe(name)
        assert recipe.name


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (MINIMAL + "  usr: user\n", r"unknown key 'interactions.usr' \(did you mean 'user'\?\)"),
        (MINIMAL + "social:\n  path: s.csv\n  frend: f\n", r"unknown key 'social.frend' \(did you mean 'friend'\?\)"),
        ("name: x\n", r"missing required key 'interactions'"),
        (MINIMAL + "item_attributes:\n  - path: t.csv\n    node: movie\n",
         r"key 'item_attributes\[0\].node' is 'movie'; choose one of 'item', 'user'"),
        (MINIMAL + "items:\n  path: i.csv\n  attributes:\n    entity: kind\n",
         r"attribute field 'entity' clashes with the node type"),
        (MINIMAL + "item_entity:\n  path: l.csv\n", r"'item_entity' links items to KG entities, so the recipe needs"),
        (MINIMAL + "on_unknown_id: ignore\n", r"key 'on_unknown_id' is 'ignore'; choose one of 'error', 'drop'"),
        (MINIMAL + "  format: xlsx\n", r"key 'interactions.format' is 'xlsx'"),
        ("name: x\ninteractions: [a, b]\n", r"key 'interactions' must be a mapping"),
        ("name: x\n  interactions: 1\n", r"r.yaml:2:\d+: malformed YAML"),
        (MINIMAL + "  sequence: history\n  timestamp: ts\n",
         r"'interactions.sequence' excludes 'interactions.timestamp' and 'interactions.rating'"),
        (MINIMAL + "text_features:\n  node_types: []\n", r"'text_features.node_types' must name at least one"),
        (MINIMAL + "text_features:\n  node_types: [item]\n",
         r"lists 'item', so 'items.text' must give its text template"),
        (MINIMAL + "text_features:\n  node_types: [entity]\n  pooling: max\n",
         r"key 'text_features.pooling' is 'max'; choose one of 'mean', 'cls'"),
        (MINIMAL + "items:\n  path: i.csv\n  join:\n    - {path: t.csv, on: asin}\n",
         r"unknown key 'items.join\[0\].True' \(YAML reads a bare on, off, yes or no as a boolean\)"),
    ],
)
def test_bad_recipes(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_recipe(recipe_file(tmp_path, text))


def test_unknown_recipe_name_suggests():
    with pytest.raises(ConfigError, match=r"no graph recipe 'ml-100' \(did you mean 'ml-100k'\?\)"):
        load_recipe("ml-100")


def test_paths_may_not_escape_the_data_root(tmp_path):
    recipe, _ = load_recipe(recipe_file(tmp_path, "name: x\ninteractions:\n  path: ../../etc/passwd\n"))
    with pytest.raises(ConfigError, match=r"'interactions.path': '../../etc/passwd' points outside the data root"):
        resolve_source(recipe.interactions, tmp_path / "root", "interactions")
    absolute = tmp_path / "elsewhere.csv"
    recipe, _ = load_recipe(recipe_file(tmp_path, f"name: x\ninteractions:\n  path: {absolute}\n"))
    assert resolve_source(recipe.interactions, tmp_path / "root", "interactions").path == (absolute,)


def test_misspelled_column_in_recipe_names_file_key_and_suggestion(tmp_path):
    path = write_tiny(tmp_path)
    path.write_text(path.read_text().replace("  rating: rating", "  rating: ratting"))
    with pytest.raises(DataError, match=r"interactions.csv: no column 'ratting' \(named by recipe key interactions\) "
                                        r"\(did you mean 'rating'\?\)"):
        build(load_recipe(path)[0], tmp_path)


def test_text_template_with_unknown_placeholder(tmp_path):
    path = write_tiny(tmp_path)
    path.write_text(path.read_text().replace('text: "{title}"', 'text: "{titel}"'))
    with pytest.raises(DataError, match=r"recipe key 'items.text': placeholder '\{titel\}' is not a column "
                                        r"\(did you mean 'title'\?\)"):
        build(load_recipe(path)[0], tmp_path)


def test_duplicate_ids_in_a_node_table(tmp_path):
    path = write_tiny(tmp_path, **{"users.csv": "user,occupation\nu1,a\nu2,b\nu1,c\nu3,a\nu4,b\n"})
    with pytest.raises(DataError, match=r"users.csv:4: user id 'u1' appears twice in column 'user'"):
        build(load_recipe(path)[0], tmp_path)


def test_non_numeric_rating_names_file_and_line(tmp_path):
    path = write_tiny(tmp_path, **{"interactions.csv": "user,item,rating,timestamp\nu1,i1,5,1\nu2,i2,good,2\n"})
    with pytest.raises(DataError, match=r"interactions.csv:3: column 'rating' has 'good', which is not a finite number"):
        build(load_recipe(path)[0], tmp_path)
