"""svldrl.baselines: the noisy-label baselines, each a small Trainer subclass registered in ``METHODS`` on import."""

from svldrl.baselines.adele import ADELEOptions, ADELETrainer
from svldrl.baselines.case_filter import CaseFilterOptions, CaseFilterTrainer
from svldrl.baselines.clcs import CLCSOptions, CLCSTrainer, DualDecoderNet
from svldrl.baselines.co_teaching import CoTeachingOptions, CoTeachingTrainer
from svldrl.baselines.common import BaselineTrainer, ema_update, parse_method_options, voxel_cross_entropy
from svldrl.baselines.jcas import JCASOptions, JCASTrainer
from svldrl.baselines.loss_correction import LossCorrectionOptions, LossCorrectionTrainer
from svldrl.baselines.meta_reweight import MetaReweightOptions, MetaReweightTrainer
from svldrl.baselines.mtcl import MTCLOptions, MTCLTrainer
from svldrl.baselines.pixeldrl import MaskStateNet, PixelDRLTrainer
from svldrl.baselines.rsf import RSFAssistedTrainer, RSFParameters, rsf_evolve
from svldrl.baselines.teacher_correction import TeacherCorrectionOptions, TeacherCorrectionTrainer
from svldrl.baselines.trusted_only import TrustedOnlyTrainer, has_trusted_cases

__all__ = [
    "has_trusted_cases",
    "ADELEOptions",
    "ADELETrainer",
    "BaselineTrainer",
    "CLCSOptions",
    "CaseFilterOptions",
    "CaseFilterTrainer",
    "CLCSTrainer",
    "CoTeachingOptions",
    "CoTeachingTrainer",
    "DualDecoderNet",
    "JCASOptions",
    "JCASTrainer",
    "LossCorrectionOptions",
    "LossCorrectionTrainer",
    "MTCLOptions",
    "MetaReweightOptions",
    "MetaReweightTrainer",
    "MTCLTrainer",
    "TeacherCorrectionOptions",
    "TeacherCorrectionTrainer",
    "MaskStateNet",
    "PixelDRLTrainer",
    "RSFAssistedTrainer",
    "TrustedOnlyTrainer",
    "RSFParameters",
    "ema_update",
    "parse_method_options",
    "rsf_evolve",
    "voxel_cross_entropy",
]
