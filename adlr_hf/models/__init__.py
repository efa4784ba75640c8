"""The model families: one folder each, and this one list. A new family adds its folder and one line here."""

from . import (cyclic_interp, deeplabv3plus, emotion, landmark_video, megatron_bert, megatron_gpt, mlstm, pd_resnet,
               reldn, sdcnet)

FAMILIES = [megatron_gpt.SPEC, megatron_bert.SPEC, mlstm.SPEC, emotion.SPEC, pd_resnet.SPEC, sdcnet.SPEC,
            cyclic_interp.SPEC, deeplabv3plus.SPEC, reldn.SPEC, landmark_video.SPEC, landmark_video.DYNAMICS_SPEC]
