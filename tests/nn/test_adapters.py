import pytest
import torch

from graphrec.nn import Adapter, LightGCNEncoder, NodePrompt, add_adapters


def test_adapter_starts_as_identity_and_learns():
    adapter = Adapter(8, bottleneck=2)
    h = torch.randn(5, 8)
    assert torch.equal(adapter(h), h)
    target = h + 1.0
    optimizer = torch.optim.Adam(adapter.parameters(), lr=0.05)
    for _ in range(100):
        loss = (adapter(h) - target).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss) < 0.1


def test_add_adapters_one_per_layer_and_type_and_errors():
    encoder = LightGCNEncoder(channels=8, num_layers=2)
    adapters = add_adapters(encoder, ["user", "item"], bottleneck=3)
    assert len(adapters) == 2 and set(adapters[0]) == {"user", "item"}
    with pytest.raises(ValueError, match="has adapters already"):
        add_adapters(encoder, ["user"])
    with pytest.raises(ValueError, match="no layers"):
        add_adapters(LightGCNEncoder(channels=8, num_layers=0), ["user"])
    with pytest.raises(ValueError, match="HeteroEncoder"):
        add_adapters(torch.nn.Linear(2, 2), ["user"])


@pytest.mark.parametrize("num_prompts", [1, 3])
def test_node_prompt_starts_near_identity_and_shifts_only_its_types(num_prompts):
    prompt = NodePrompt(["item"], 4, num_prompts=num_prompts)
    x_dict = {"user": torch.randn(3, 4), "item": torch.randn(5, 4)}
    out = prompt(x_dict)
    assert torch.equal(out["user"], x_dict["user"])
    assert torch.allclose(out["item"], x_dict["item"], atol=0.05)
    with torch.no_grad():
        prompt.prompts["item"].fill_(1.0)
    shifted = prompt(x_dict)["item"]
    assert torch.allclose(shifted, x_dict["item"] + 1.0, atol=1e-6)  # softmax weights sum to one
