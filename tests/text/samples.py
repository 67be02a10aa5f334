"""A source and a rewrite of it, in English and in Chinese, for the cleaning and overlap tests."""

SOURCE = (
    "The Amazon river carries more water than any other river. Rainforest trees line the river "
    "banks, and the rainforest is home to jaguars, river dolphins and thousands of fish species. "
    "Deforestation threatens the rainforest and the river."
)
REWRITE = (
    "Imagine a river so big that it moves more water than every other river on Earth! The "
    "Amazon flows through a rainforest full of jaguars and pink river dolphins. Sadly, cutting "
    "down trees harms this rainforest."
)
ZH_SOURCE = (
    "亚马逊河的水量比世界上任何其他河流都多。雨林树木生长在河岸两边，雨林里生活着美洲豹、河豚和"
    "数千种鱼类。砍伐森林正在威胁雨林。"
)
ZH_REWRITE = (
    "想象一条大河，它的水量超过地球上所有其他河流！亚马逊河流经一片雨林，那里有美洲豹和粉红色的"
    "河豚。可惜，砍伐树木正在伤害这片雨林。"
)
