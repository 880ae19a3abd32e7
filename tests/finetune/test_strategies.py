"""Fine-tuning strategies: what trains really changes, what is frozen really does not."""

import pytest
import torch

from graphrec.errors import ConfigError
from graphrec.finetune import count_parameters, freeze, insert_modules, load_pretrained, save_pretrained
from graphrec.nn import GraphRecommender, LightGCNEncoder, LinearDotHead, MLPHead, NodeEmbedding
from graphrec.nn.heads import DotProductHead
from graphrec.train import Trainer

NUM_USERS, NUM_ITEMS = 12, 10


def make_model(head=None, seed=0):
    torch.manual_seed(seed)
    embedding = NodeEmbedding({"user": NUM_USERS, "item": NUM_ITEMS, "genre": 3}, 8)
    genre_edges = torch.tensor([[0, 1, 2, 3, 4, 5], [0, 0, 1, 1, 2, 2]])
    side = {("item", "has_genre", "genre"): genre_edges, ("genre", "rev_has_genre", "item"): genre_edges.flip(0)}
    return GraphRecommender(embedding, LightGCNEncoder(num_layers=2, channels=8), side,
                            head if head is not None else DotProductHead())


def interactions(seed=0):
    generator = torch.Generator().manual_seed(seed)
    users = torch.arange(NUM_USERS).repeat_interleave(3)
    items = torch.randint(0, NUM_ITEMS, (users.numel(),), generator=generator)
    return torch.stack([users, items])


def train_steps(model, epochs=3):
    Trainer(model, interactions(), epochs=epochs, batch_size=8, lr=0.05, weight_decay=0.0, device="cpu",
            progress=False).fit()


@pytest.mark.parametrize("strategy,frozen,head,trained_prefixes", [
    ("full", (), "dot", ("embedding",)),
    ("partial", ("embedding.embeddings.item",), "dot", ("embedding.embeddings.user",)),
    ("head", (), "linear", ("head",)),
    ("head", (), "mlp", ("head",)),
    ("adapter", (), "dot", ("encoder.adapters",)),
    ("prompt", (), "linear", ("prompt", "head")),
])
def test_frozen_tensors_do_not_change_and_trained_ones_do(strategy, frozen, head, trained_prefixes):
    model = make_model({"dot": DotProductHead(), "linear": LinearDotHead(8), "mlp": MLPHead(8)}[head])
    insert_modules(model, strategy, adapter_dim=4)
    report = freeze(model, strategy, frozen)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    train_steps(model)
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert changed <= trainable  # nothing frozen moved
    for prefix in trained_prefixes:
        assert any(name.startswith(prefix) for name in changed), (prefix, sorted(changed))
    assert report.trainable_parameters == sum(p.numel() for n, p in model.named_parameters() if n in trainable)
    assert report.total_parameters == count_parameters(model)
    if strategy != "full":
        assert report.trainable_parameters < report.total_parameters


def test_head_strategy_encodes_once_and_parameter_counts_are_small():
    model = make_model(MLPHead(8, hidden=4))
    report = freeze(model, "head")
    model.set_graph(interactions())
    calls = []
    model.encoder.register_forward_hook(lambda *args: calls.append(1))
    model.train()
    first, _ = model()
    second, _ = model()
    assert len(calls) == 1 and first is second
    assert report.trainable_parameters == 3 * 8 * 4 + 4 + 4 + 1  # the MLP: [u, i, u*i] -> 4 -> 1


def test_adapters_and_prompts_start_as_the_identity():
    model = make_model()
    model.set_graph(interactions())
    model.eval()
    user, item = model()
    insert_modules(model, "adapter", adapter_dim=4)
    model.prompt = None
    adapted_user, adapted_item = model()
    assert torch.allclose(user, adapted_user) and torch.allclose(item, adapted_item)
    prompted = make_model()
    insert_modules(prompted, "prompt")
    prompted.load_state_dict(model.state_dict(), strict=False)
    prompted.set_graph(interactions())
    prompted.eval()
    assert torch.allclose(prompted()[0], user)


def test_strategy_errors_name_the_key():
    model = make_model()
    with pytest.raises(ConfigError, match="finetune.strategy.*'fine'"):
        freeze(model, "fine")
    with pytest.raises(ConfigError, match="finetune.frozen.*is empty"):
        freeze(model, "partial")
    with pytest.raises(ConfigError, match="'encoder.convs.9'.*matches no parameter"):
        freeze(model, "partial", ["encoder.convs.9"])
    with pytest.raises(ConfigError, match="head.*no parameter to train.*linear or mlp"):
        freeze(model, "head")


def test_pretrained_weights_round_trip_and_shape_errors(tmp_path):
    source = make_model(seed=1)
    save_pretrained(tmp_path / "encoder.safetensors", source)
    target = make_model(MLPHead(8), seed=2)
    insert_modules(target, "adapter", adapter_dim=4)
    loaded = load_pretrained(target, tmp_path)  # the folder works as well as the file
    assert loaded and all(name.startswith(("embedding.", "encoder.")) for name in loaded)
    for name in loaded:
        assert torch.equal(target.state_dict()[name], source.state_dict()[name])
    other = GraphRecommender(NodeEmbedding({"user": NUM_USERS, "item": NUM_ITEMS + 1, "genre": 3}, 8),
                             LightGCNEncoder(num_layers=2, channels=8))
    from graphrec.errors import CheckpointError

    with pytest.raises(CheckpointError, match="embedding.embeddings.item.*shape"):
        load_pretrained(other, tmp_path / "encoder.safetensors")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="holds no encoder.safetensors"):
        load_pretrained(target, tmp_path / "empty")
