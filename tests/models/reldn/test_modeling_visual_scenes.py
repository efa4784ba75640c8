"""The visual module learns what only pixels show: generated scenes of a red and a blue square where the predicate
("left of" or "above") is the squares' arrangement. Both scenes have the same classes, so the frequency prior cannot
tell them apart (chance), and the visual module alone (no spatial module: it reads pixels through the frozen
detector's feature maps and the trainable union box head) learns it."""

import torch

from adlr_hf import registry
from adlr_hf.models.reldn import ReldnForRelationshipDetection

SIZE, SIDE = 48, 10
LEFT_OF, ABOVE = 0, 1


def scenes(count: int, seed: int):
    """(images [count, 3, 48, 48], boxes [count, 2, 4], predicates [count]): a red square (class 0, the subject)
    left of or above a blue square (class 1), at random positions."""
    generator = torch.Generator().manual_seed(seed)
    images, boxes = torch.zeros(count, 3, SIZE, SIZE), torch.zeros(count, 2, 4)
    predicates = torch.randint(0, 2, (count,), generator=generator)
    for i in range(count):
        gap = int(torch.randint(2, 8, (1,), generator=generator))
        along = int(torch.randint(0, SIZE - 2 * SIDE - gap, (1,), generator=generator))
        across = int(torch.randint(0, SIZE - SIDE, (1,), generator=generator))
        first, second = (along, across), (along + SIDE + gap, across)
        if predicates[i] == LEFT_OF:  # x varies along, y across
            corners = [(first[0], first[1]), (second[0], second[1])]
        else:
            corners = [(first[1], first[0]), (second[1], second[0])]
        for k, (x, y) in enumerate(corners):
            images[i, 0 if k == 0 else 2, y:y + SIDE, x:x + SIDE] = 1.0
            boxes[i, k] = torch.tensor([x, y, x + SIDE - 1, y + SIDE - 1], dtype=torch.float32)
    return images, boxes, predicates


def accuracy(model, images, boxes, predicates) -> float:
    with torch.no_grad():
        out = model(pixel_values=images, boxes=boxes, box_labels=torch.tensor([[0, 1]]).expand(len(images), -1),
                    image_sizes=torch.tensor([[SIZE, SIZE]]).expand(len(images), -1))
    # slot 0 is the pair (red, blue); the chosen foreground predicate
    return (out.predicate_logits[:, 0, 1:].argmax(-1) == predicates).float().mean().item()


def test_the_visual_module_learns_arrangements_the_class_prior_cannot_see():
    config = registry.get_config("reldn-tiny-visual")
    config.num_object_classes, config.num_predicates = 2, 2
    config.use_spatial = config.use_semantic = config.use_subject_object = config.use_contrastive_losses = False
    config.detector_min_size = config.detector_max_size = SIZE  # no resize
    torch.manual_seed(0)
    model = ReldnForRelationshipDetection(config)
    train, test = scenes(256, seed=1), scenes(128, seed=2)
    before = accuracy(model.eval(), *test)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    generator = torch.Generator().manual_seed(3)
    model.train()
    for _ in range(40):
        batch = torch.randint(0, 256, (16,), generator=generator)
        images, boxes, predicates = (t[batch] for t in train)
        relations = torch.stack([torch.zeros_like(predicates), torch.ones_like(predicates), predicates], -1)[:, None]
        loss = model(pixel_values=images, boxes=boxes, box_labels=torch.tensor([[0, 1]]).expand(16, -1),
                     image_sizes=torch.tensor([[SIZE, SIZE]]).expand(16, -1), labels=relations).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = accuracy(model.eval(), *test)
    assert after >= 0.9, (before, after)
    assert after - before >= 0.3, (before, after)
    # the frequency prior sees the same (red, blue) class pair in both scenes: the best it can do is the majority
    majority = max(test[2].float().mean().item(), 1 - test[2].float().mean().item())
    assert after > majority + 0.3
