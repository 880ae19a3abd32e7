"""graphrec.nn and graphrec.pretext in your own model, trained by a plain PyTorch loop.

A small heterogeneous graph built by hand (users, items, genres; two planted taste groups), a
model made of graphrec layers (ID embeddings -> R-GCN over every edge type -> dot product),
pre-trained for a few steps with masked edge prediction and then trained with BPR. Only torch,
torch_geometric, graphrec.nn and graphrec.pretext are imported; no graphrec pipeline runs.

    python examples/nn_in_your_model.py
"""

import torch
from torch_geometric.data import HeteroData

from graphrec.nn import RGCN, DotProductHead, NodeEmbedding, bpr_loss
from graphrec.pretext import MaskedEdgePrediction, PretextBatch

torch.manual_seed(0)

# ---- 1. A graph: 200 users and 100 items in two taste groups (even ids: group 0, odd ids: group 1).
# Each user buys 8 items, 90% of them from their own group; each group's items share two genres.
num_users, num_items, num_genres = 200, 100, 4
user_group, item_group = torch.arange(num_users) % 2, torch.arange(num_items) % 2
buyers = torch.arange(num_users).repeat_interleave(8)  # [E]
own_group = torch.rand(len(buyers)) < 0.9
group = torch.where(own_group, user_group[buyers], 1 - user_group[buyers])
bought = group + 2 * torch.randint(0, num_items // 2, (len(buyers),))  # an item of that group
purchases = torch.unique(torch.stack([buyers, bought]), dim=1)  # [2, E], repeats dropped
held_out = torch.rand(purchases.size(1)) < 0.2
train, test = purchases[:, ~held_out], purchases[:, held_out]  # test edges stay out of the graph
item_genre = torch.stack([torch.arange(num_items), 2 * item_group + torch.randint(0, 2, (num_items,))])

data = HeteroData()
data["user"].num_nodes, data["item"].num_nodes, data["genre"].num_nodes = num_users, num_items, num_genres
data["user", "interacts", "item"].edge_index = train
data["item", "rev_interacts", "user"].edge_index = train.flip(0)  # reverse copies: messages flow both ways
data["item", "has_genre", "genre"].edge_index = item_genre
data["genre", "rev_has_genre", "item"].edge_index = item_genre.flip(0)
edge_index_dict = data.edge_index_dict
num_nodes_dict = {node_type: data[node_type].num_nodes for node_type in data.node_types}


# ---- 2. A model made of graphrec layers. `inputs()` and `encode()` are all a pretext task asks of it.
class Recommender(torch.nn.Module):
    def __init__(self, data: HeteroData, embedding_dim: int = 32) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.embedding = NodeEmbedding(num_nodes_dict, embedding_dim)  # an ID vector per node
        self.encoder = RGCN(data.metadata(), channels=embedding_dim, num_layers=2)
        self.head = DotProductHead()

    def inputs(self) -> dict[str, torch.Tensor]:
        return self.embedding()  # {node type: [N_t, D]}

    def encode(self, x_dict, edge_index_dict) -> dict[str, torch.Tensor]:
        return self.encoder(x_dict, edge_index_dict)  # {node type: [N_t, D]}


model = Recommender(data)

# ---- 3. Pre-train: hide 15% of the purchases (and their reverse copies) each step and predict them.
pretext = MaskedEdgePrediction(data, model.embedding_dim, mask_rate=0.15)
optimizer = torch.optim.Adam([*model.parameters(), *pretext.parameters()], lr=0.01)
generator = torch.Generator().manual_seed(0)
pretext_losses = []
for step in range(40):
    loss = pretext.loss(model, PretextBatch(edge_index_dict, num_nodes_dict, step, generator))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    pretext_losses.append(loss.item())
print(f"masked edge loss: first 5 steps {sum(pretext_losses[:5]) / 5:.3f}, "
      f"last 5 steps {sum(pretext_losses[-5:]) / 5:.3f}")

# ---- 4. Train for recommendation: BPR, every training purchase against one random item per epoch.
optimizer = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=3e-3)
bpr_losses = []
for epoch in range(60):
    h = model.encode(model.inputs(), edge_index_dict)
    users, items = train
    negatives = torch.randint(0, num_items, (train.size(1),))  # [E]
    loss = bpr_loss(model.head(h["user"][users], h["item"][items]),  # [E] positive scores
                    model.head(h["user"][users], h["item"][negatives]))  # [E] negative scores
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    bpr_losses.append(loss.item())
    if epoch % 20 == 0 or epoch == 59:
        print(f"epoch {epoch:>2}  BPR loss {loss.item():.4f}")

# ---- 5. Each held-out purchase against the items its user did not buy in training: the share it
# outscores (an AUC; 0.5 is chance, about 0.7 the best a model of the two groups can do here).
model.eval()
with torch.no_grad():
    h = model.encode(model.inputs(), edge_index_dict)
    scores = model.head.score_all(h["user"], h["item"])  # [U, I]
    unseen = torch.ones(num_users, num_items, dtype=torch.bool)
    unseen[train[0], train[1]] = False  # [U, I]
    above = (scores[test[0], test[1]].unsqueeze(1) > scores[test[0]]) & unseen[test[0]]  # [T, I]
    auc = (above.sum(1) / unseen[test[0]].sum(1)).mean().item()
print(f"held-out AUC {auc:.3f} over {test.size(1)} purchases the model never saw")
